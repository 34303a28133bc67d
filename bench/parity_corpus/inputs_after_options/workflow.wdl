version 1.0
workflow w {
  call a
  output { Int n = a.n }
}
task a {
  command <<< echo 1 >>>
  output { Int n = read_int(stdout()) }
}
task b {
  input { Int x }
  command <<< echo $(( ~{x} * 2 )) >>>
  output { Int doubled = read_int(stdout()) }
}
