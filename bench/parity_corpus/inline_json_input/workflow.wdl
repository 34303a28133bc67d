version 1.0
workflow w {
  input { Array[Int] xs }
  output { Int n = length(xs) }
}
