version development
workflow w {
  call make
  call count { input: d = make.d }
  output { Directory d = make.d  Int n = count.n }
}
task make {
  command <<< mkdir -p results; for i in 1 2 3 4; do echo $i > results/$i.txt; done >>>
  output { Directory d = "results" }
}
task count {
  input { Directory d }
  command <<< find ~{d}/ -type f | wc -l >>>
  output { Int n = read_int(stdout()) }
}
