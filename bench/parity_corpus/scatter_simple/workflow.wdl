version 1.0
workflow w {
  input { Int n = 4 }
  scatter (i in range(n)) {
    call square { input: x = i }
  }
  output { Array[Int] squares = square.y }
}
task square {
  input { Int x }
  command <<< echo $(( ~{x} * ~{x} )) >>>
  output { Int y = read_int(stdout()) }
}
