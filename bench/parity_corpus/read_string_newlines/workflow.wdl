version 1.0
task t {
  command <<< printf 'a\n\n\n' > three.txt; printf 'x' > none.txt; printf '' > empty.txt >>>
  output {
    String three = read_string("three.txt")
    String none = read_string("none.txt")
    Array[String] empty_lines = read_lines("empty.txt")
    Array[String] blank_lines = read_lines("three.txt")
  }
}
