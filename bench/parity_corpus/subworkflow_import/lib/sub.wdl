version 1.0
workflow summing {
  input { Array[Int] xs }
  call add { input: xs = xs }
  output { Int total = add.s }
}
task add {
  input { Array[Int] xs }
  command <<< echo $(( ~{sep=" + " xs} )) >>>
  output { Int s = read_int(stdout()) }
}
