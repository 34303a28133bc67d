version 1.0
workflow big {
  input { Int n = 1000 }
  scatter (i in range(n)) {
    call square { input: x = i }
  }
  output { Int total = length(square.out)
    Array[Int] squares = square.out }
}
task square {
  input { Int x }
  command <<< echo $(( ~{x} * ~{x} )) >>>
  output { Int out = read_int(stdout()) }
  runtime { docker: "ubuntu:22.04" }
}
