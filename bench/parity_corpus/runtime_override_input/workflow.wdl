version 1.0
task t {
  command <<< echo ~{42} >>>
  output { Int x = read_int(stdout()) }
  runtime { docker: "ubuntu:20.04"  cpu: 1 }
}
