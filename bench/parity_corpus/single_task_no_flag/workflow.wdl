version 1.0
task greet {
  input { String who = "world"  Int times = 1 }
  command <<< for i in $(seq ~{times}); do echo "hi ~{who}"; done >>>
  output { Array[String] lines = read_lines(stdout()) }
}
