version 1.0
workflow w {
  scatter (i in range(6)) {
    if (i % 2 == 0) {
      call t { input: i = i }
    }
  }
  output { Array[Int?] maybe = t.y  Array[Int] evens = select_all(t.y) }
}
task t {
  input { Int i }
  command <<< echo $(( ~{i} + 100 )) >>>
  output { Int y = read_int(stdout()) }
}
