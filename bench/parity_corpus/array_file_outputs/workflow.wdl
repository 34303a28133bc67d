version 1.0
workflow w {
  call make
  call total { input: parts = make.parts }
  output { Array[File] parts = make.parts  Int sum = total.sum }
}
task make {
  command <<< for i in 1 2 3; do echo $i > part$i.txt; done >>>
  output { Array[File] parts = ["part1.txt", "part2.txt", "part3.txt"] }
}
task total {
  input { Array[File] parts }
  command <<< cat ~{sep=" " parts} | paste -sd+ | bc >>>
  output { Int sum = read_int(stdout()) }
}
