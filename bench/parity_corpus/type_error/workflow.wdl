version 1.0
workflow w {
  Int x = "string"
  output { Int y = x }
}
