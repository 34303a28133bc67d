version 1.0
workflow w {
  call t { input: content = "line one" }
  output { File f = t.f  Float sz = size(t.f) }
}
task t {
  input { String content }
  File staged = write_lines([content, "line two"])
  command <<< cp ~{staged} copy.txt >>>
  output { File f = "copy.txt" }
}
