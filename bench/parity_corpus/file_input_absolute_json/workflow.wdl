version 1.0
workflow w {
  input { File f  Array[File] more }
  call cat_all { input: files = flatten([[f], more]) }
  output { String all = cat_all.s  File passthrough = f }
}
task cat_all {
  input { Array[File] files }
  command <<< cat ~{sep=" " files} | tr '\n' ' ' >>>
  output { String s = read_string(stdout()) }
}
