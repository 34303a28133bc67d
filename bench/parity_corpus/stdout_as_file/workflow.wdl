version 1.0
task t {
  command <<< printf 'one\ntwo\n' >>>
  output { File out = stdout()  Array[String] lines = read_lines(stdout()) }
}
