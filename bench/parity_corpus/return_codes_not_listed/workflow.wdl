version 1.0
task t {
  command <<< exit 5 >>>
  output { Int x = 1 }
  runtime { returnCodes: [0, 1] }
}
