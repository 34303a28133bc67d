version 1.0
workflow w {
  input { String? s  Int n = 5  Array[String] tags = []  String derived = "n=~{n}" }
  call t { input: s = s, n = n }
  output { String out = t.out  Boolean has_s = defined(s)  Int ntags = length(tags)  String d = derived }
}
task t {
  input { String? s  Int n  String mode = "plain" }
  command <<< echo "~{default='(none)' s} ~{n} ~{mode}" >>>
  output { String out = read_string(stdout()) }
}
