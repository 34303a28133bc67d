version 1.0
workflow w {
  input { Array[String] words = ["alpha", "beta", "gamma"] }
  call rev { input: f = write_lines(words) }
  output { Array[String] reversed = rev.lines  Int n = length(rev.lines) }
}
task rev {
  input { File f }
  command <<< tac ~{f} >>>
  output { Array[String] lines = read_lines(stdout()) }
}
