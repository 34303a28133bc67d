version 1.0
workflow make_files {
  input { Int n }
  scatter (i in range(n)) {
    call one { input: i = i }
  }
  output { Array[File] files = one.f }
}
task one {
  input { Int i }
  command <<< echo "file ~{i}" > out_~{i}.txt >>>
  output { File f = "out_~{i}.txt" }
}
