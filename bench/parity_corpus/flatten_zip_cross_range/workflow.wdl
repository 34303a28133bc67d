version 1.0
workflow w {
  Array[Int] xs = range(3)
  Array[String] ys = ["a", "b", "c"]
  output {
    Array[Int] flat = flatten([[1, 2], [], [3]])
    Array[Pair[Int, String]] zipped = zip(xs, ys)
    Array[Pair[Int, String]] crossed = cross([1, 2], ["x", "y"])
    Array[String] prefixed = prefix("id_", xs)
    Int n = length(flatten([xs, xs]))
    Array[Array[Int]] tr = transpose([[1, 2, 3], [4, 5, 6]])
  }
}
