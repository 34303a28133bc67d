version 1.0
workflow w {
  input { Int? a  Int? b = 2  String? s }
  output {
    Int first = select_first([a, b, 9])
    Array[Int] all = select_all([a, b, 3])
    Boolean a_defined = defined(a)
    Boolean b_defined = defined(b)
    String s_or = select_first([s, "fallback"])
  }
}
