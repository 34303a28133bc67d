version 1.0
workflow w {
  input { Int i = 2  String path_string }
  File f = path_string
  Float as_float = i
  String as_string = "~{i}"
  output { Float ff = as_float  String ss = as_string  String content = read_string(f)  File file = f }
}
