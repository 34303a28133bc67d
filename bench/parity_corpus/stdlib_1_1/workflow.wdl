version 1.1
workflow w {
  Map[String, Int] m = {"a": 1, "b": 2}
  output {
    Array[String] ks = keys(m)
    Array[Pair[String, Int]] ps = as_pairs(m)
    Map[String, Int] back = as_map(ps)
    Map[String, Array[Int]] collected = collect_by_key([("x", 1), ("x", 2), ("y", 3)])
    Int mn = min(3, 5)  Float mx = max(2, 4.5)
    String joined = sep("-", ["a", "b", "c"])
    Array[String] q = quote(["a", "b"])
    Array[String] sq = squote(["a"])
    Array[String] suf = suffix(".txt", ["a", "b"])
    Pair[Array[Int], Array[String]] un = unzip([(1, "a"), (2, "b")])
  }
}
