version 1.0
struct P { String name  Int age }
workflow w {
  input { P p }
  output { String n = p.name }
}
