version 1.0
task t {
  input { String name = "braces"  Array[String] xs = ["p", "q"] }
  command {
    echo "${name} ~{sep='+' xs}"
    X=shellvar; echo "$X"
  }
  output { Array[String] lines = read_lines(stdout()) }
}
