version 1.0
workflow w {
  call t
  output { String s = t.s }
}
task t {
  input { String greeting = "hello"  Int reps = 1 }
  command <<< for i in $(seq ~{reps}); do printf '%s ' ~{greeting}; done >>>
  output { String s = read_string(stdout()) }
}
