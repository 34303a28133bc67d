version development
workflow w {
  input { Array[Directory] dirs  Directory? maybe }
  scatter (d in dirs) {
    call size_of { input: d = d }
  }
  output { Array[Int] counts = size_of.n  Boolean has_maybe = defined(maybe) }
}
task size_of {
  input { Directory d }
  command <<< ls ~{d} | wc -l >>>
  output { Int n = read_int(stdout()) }
}
