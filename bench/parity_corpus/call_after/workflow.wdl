version 1.1
workflow w {
  call first
  call second after first
  output { String s = second.s  Int one = first.x }
}
task first {
  command <<< echo 1 >>>
  output { Int x = read_int(stdout()) }
}
task second {
  command <<< echo second >>>
  output { String s = read_string(stdout()) }
}
