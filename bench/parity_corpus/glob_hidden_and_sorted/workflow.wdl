version 1.0
task t {
  command <<< touch b.txt a.txt .hidden.txt C.txt; mkdir d.txt >>>
  output { Array[File] files = glob("*.txt")  Int n = length(files) }
}
