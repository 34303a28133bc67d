version 1.0
workflow w {
  input { File f }
  output { String s = read_string(f) }
}
