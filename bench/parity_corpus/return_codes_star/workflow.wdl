version 1.0
task t {
  command <<< echo ok; exit 7 >>>
  output { String s = read_string(stdout()) }
  runtime { returnCodes: "*" }
}
