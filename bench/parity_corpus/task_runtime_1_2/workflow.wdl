version 1.2
task t {
  command <<< echo ~{task.name} ~{task.cpu} ~{task.attempt} >>>
  output { String s = read_string(stdout())  Int mem_positive = if task.memory > 0 then 1 else 0 }
  requirements { cpu: 2  memory: "1 GiB" }
}
