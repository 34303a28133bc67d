version 1.0
task t {
  command <<< for x in c a b; do echo $x > $x.txt; done; echo no > skip.dat >>>
  output { Array[File] txts = glob("*.txt")  Int n = length(glob("*.txt")) }
}
