version 1.0
import "sub.wdl"
workflow w {
  call sub.make_files { input: n = 2 }
  call count { input: files = make_files.files }
  output { Array[File] files = make_files.files  Int total = count.n }
}
task count {
  input { Array[File] files }
  command <<< cat ~{sep=" " files} | wc -l >>>
  output { Int n = read_int(stdout()) }
}
