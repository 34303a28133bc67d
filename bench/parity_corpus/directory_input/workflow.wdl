version development
workflow w {
  input { Directory d }
  call ls_dir { input: d = d }
  output { Array[String] names = ls_dir.names  String b = basename(d) }
}
task ls_dir {
  input { Directory d }
  command <<< ls ~{d} | sort >>>
  output { Array[String] names = read_lines(stdout()) }
}
