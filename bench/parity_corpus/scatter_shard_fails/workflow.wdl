version 1.0
workflow w {
  scatter (i in range(3)) {
    call maybe { input: i = i }
  }
  output { Array[Int] out = maybe.out }
}
task maybe {
  input { Int i }
  command <<< if [ ~{i} -eq 1 ]; then exit 9; fi; echo ~{i} >>>
  output { Int out = read_int(stdout()) }
}
