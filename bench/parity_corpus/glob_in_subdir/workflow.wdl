version 1.0
task t {
  command <<< mkdir -p out/sub; echo 1 > out/one.log; echo 2 > out/sub/two.log >>>
  output { Array[File] top = glob("out/*.log")  Array[File] nested = glob("out/*/*.log") }
}
