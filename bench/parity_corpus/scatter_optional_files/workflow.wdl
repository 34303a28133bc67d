version 1.0
workflow w {
  scatter (i in range(3)) {
    call t { input: i = i }
  }
  output { Array[File?] maybe = t.f  Array[File] some = select_all(t.f) }
}
task t {
  input { Int i }
  command <<< if [ ~{i} -ne 1 ]; then echo ~{i} > f.txt; fi >>>
  output { File? f = "f.txt" }
}
