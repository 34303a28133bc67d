version 1.0
workflow w {
  input { Int? a }
  output { Int x = select_first([a]) }
}
