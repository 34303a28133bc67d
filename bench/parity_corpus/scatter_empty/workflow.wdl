version 1.0
workflow w {
  Array[Int] none = []
  scatter (x in none) {
    call t { input: x = x }
  }
  output { Array[Int] ys = t.y  Int n = length(ys) }
}
task t {
  input { Int x }
  command <<< echo ~{x} >>>
  output { Int y = read_int(stdout()) }
}
