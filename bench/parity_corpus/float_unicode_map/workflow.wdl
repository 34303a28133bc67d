version 1.0
workflow w {
  Float third = 1.0 / 3
  String u = "héllo ✓"
  Map[String, Int] m = {"z": 1, "a": 2, "m": 3}
  output { Float t = third  String s = u  Map[String, Int] mm = m  Float big = 1e20  Int neg = -7 }
}
