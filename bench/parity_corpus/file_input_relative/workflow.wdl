version 1.0
workflow w {
  input { File f }
  call count { input: f = f }
  output { Int lines = count.n  String first = read_lines(f)[0] }
}
task count {
  input { File f }
  command <<< wc -l < ~{f} >>>
  output { Int n = read_int(stdout()) }
}
