version 1.0
workflow inner {
  input { String greeting = "hi" }
  output { String s = greeting + "!" }
}
