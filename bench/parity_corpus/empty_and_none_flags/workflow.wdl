version 1.1
workflow w {
  input { Array[String] xs = ["default"]  String? s = "set" }
  output { Int n = length(xs)  Boolean d = defined(s) }
}
