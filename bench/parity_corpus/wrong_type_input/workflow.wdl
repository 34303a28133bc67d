version 1.0
workflow w {
  input { Int n }
  output { Int m = n + 1 }
}
