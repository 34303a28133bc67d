version 1.0
workflow w {
  input { Int n = 1 }
  output { Int m = n + 1 }
}
