version 1.0
workflow w {
  input { Pair[String, Int] p  Map[String, Float] m }
  output { String l = p.left  Int r = p.right  Float b = m["b"] }
}
