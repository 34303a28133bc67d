version 1.0
task t {
  input { File f }
  command <<< wc -c < ~{f} >>>
  output { Int bytes = read_int(stdout()) }
  runtime { disks: "local-disk ~{ceil(size(f, 'GB')) + 1} SSD"  memory: "~{1 + 1} GB"  cpu: 1 }
}
