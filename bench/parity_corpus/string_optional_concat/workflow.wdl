version 1.1
workflow w {
  input { String? maybe  String name = "x" }
  output { String s = "~{name}-~{maybe}"  String d = "~{default='none' maybe}"  Boolean def = defined(maybe) }
}
