version 1.0
workflow w {
  call hello { input: who = "parity" }
  output { String msg = hello.msg }
}
task hello {
  input { String who }
  command <<< echo "hello, ~{who}" >>>
  output { String msg = read_string(stdout()) }
}
