version 1.0
task a {
  command <<< echo a >>>
  output { String s = read_string(stdout()) }
}
task b {
  command <<< echo b >>>
  output { String s = read_string(stdout()) }
}
