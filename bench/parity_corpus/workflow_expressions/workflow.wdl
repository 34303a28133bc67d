version 1.0
workflow w {
  input { Int a = 3  String s = "abc" }
  Int b = a * 2 + 1
  Float c = b / 2.0
  String t = s + "-" + b
  Array[Int] arr = [a, b, 10]
  Boolean cond = if a > 2 then true else false
  output { Int b_out = b  Float c_out = c  String t_out = t  Int last = arr[2]  Boolean cond_out = cond }
}
