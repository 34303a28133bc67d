version 1.0
workflow w {
  call fails
  output { String s = fails.s }
}
task fails {
  command <<< echo about to fail; exit 3 >>>
  output { String s = read_string(stdout()) }
}
