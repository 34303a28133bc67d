version 1.0
workflow w {
  scatter (x in []) {
    Int y = x
  }
  output { Array[Int] ys = y }
}
