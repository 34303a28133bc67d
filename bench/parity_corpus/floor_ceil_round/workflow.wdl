version 1.0
workflow w {
  input { Float x = 2.5  Float y = -1.5 }
  output {
    Int f = floor(x)  Int c = ceil(x)  Int r = round(x)
    Int fy = floor(y)  Int cy = ceil(y)  Int ry = round(y)
    Float div = 7 / 2.0  Int idiv = 7 / 2  Int mod = 7 % 3
  }
}
