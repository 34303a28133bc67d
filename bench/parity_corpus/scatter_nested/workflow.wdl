version 1.0
workflow w {
  scatter (i in [1, 2]) {
    scatter (j in ["a", "b", "c"]) {
      call pair_up { input: i = i, j = j }
    }
  }
  output { Array[Array[String]] names = pair_up.name  Int n = length(flatten(pair_up.name)) }
}
task pair_up {
  input { Int i  String j }
  command <<< echo "~{j}~{i}" >>>
  output { String name = read_string(stdout()) }
}
