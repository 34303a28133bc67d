version 1.0
workflow w {
  input { File? f  Array[File?] maybe_files = [] }
  call t { input: f = f }
  output { String s = t.s  File? passthrough = f  Int n = length(select_all(maybe_files)) }
}
task t {
  input { File? f }
  command <<< echo "~{if defined(f) then 'given' else 'absent'}" >>>
  output { String s = read_string(stdout()) }
}
