version 1.0
task t {
  command <<< echo ok; exit 42 >>>
  output { String s = read_string(stdout()) }
  runtime { returnCodes: [0, 42] }
}
